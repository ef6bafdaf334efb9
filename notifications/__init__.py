"""Email notifications (README « Emails »; docs/architecture.md): Jinja2 templates, the
transactional outbox, the dispatcher and its transports (an .eml folder, or SMTP through
yagmail)."""
