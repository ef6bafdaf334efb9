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

// htmx 2 does not swap 4xx answers: a form sent back with its French errors would show
// nothing. Swap them; the server points such a swap at the page's <main> (HX-Retarget).
if (window.htmx) {
  window.htmx.config.responseHandling = [
    {code: "204", swap: false},
    {code: "[23]..", swap: true},
    {code: "4..", swap: true},
    {code: "[5]..", swap: false, error: true},
    {code: "...", swap: false}
  ];
}
