// The header's menus (<details class="menu">) open and close without this file; with it, a
// menu also closes on Escape (the focus goes back to its button) and on a click elsewhere.
(function () {
  var menus = document.querySelectorAll("header details.menu");
  if (!menus.length) return;
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    menus.forEach(function (menu) {
      if (!menu.open) return;
      menu.open = false;
      menu.querySelector("summary").focus();
    });
  });
  document.addEventListener("click", function (event) {
    menus.forEach(function (menu) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
  });
})();
