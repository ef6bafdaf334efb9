"""Email notifications: templates, rendering, the transactional outbox and transports.

Not built yet (issue 5): no email is sent by odd17 today."""
