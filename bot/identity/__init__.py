"""Who the person is: chat accounts linked to CRM users, and TOTP verification."""
