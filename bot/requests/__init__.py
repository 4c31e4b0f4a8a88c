"""Acting on the CRM: the unlock policy, requests for admins, the outbox and the audit trail."""
