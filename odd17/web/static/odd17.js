// htmx requests carry the page's anti-CSRF token (no inline script: the CSP forbids it).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});

// A form sent back with errors: the summary at its top takes the focus (screen readers read it).
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.getElementById("erreurs");
  if (summary) { summary.focus(); }
});
