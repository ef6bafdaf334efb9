"""The web portal: FastAPI, server-rendered Jinja2 pages, htmx (vendored, never from a CDN).

An entrypoint like the CLI: each route parses the request, calls one use case with the signed-in
user, and renders the result. Authorisation lives in the use cases, not in the templates."""
