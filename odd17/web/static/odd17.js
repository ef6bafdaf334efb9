// htmx requests carry the page's anti-CSRF token (no inline script: the CSP forbids it).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});
