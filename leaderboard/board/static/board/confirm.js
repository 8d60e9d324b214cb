// Asks before a form whose button has data-confirm="question" is sent (no inline handler:
// the Content-Security-Policy runs only the site's script files).
(function () {
  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
