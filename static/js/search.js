// The header's search box as an ARIA combobox: htmx fills the listbox as you type; this script adds the
// keyboard (Down/Up move, Enter opens the highlighted movie, Escape closes), the mouse, and the ARIA state.
// Options hold no links (no interactive control inside another): each names its page in data-href.
(function () {
  "use strict";
  function setup(input) {
    var list = document.getElementById(input.getAttribute("aria-controls"));
    var status = document.getElementById(input.dataset.status);
    var active = -1;
    function options() { return Array.prototype.slice.call(list.querySelectorAll('[role="option"]')); }
    function open(isOpen) {
      list.hidden = !isOpen;
      input.setAttribute("aria-expanded", isOpen ? "true" : "false");
      if (!isOpen) { highlight(-1); }
    }
    function highlight(index) {
      var items = options();
      items.forEach(function (item, i) { item.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (index >= 0 && items[index]) {
        input.setAttribute("aria-activedescendant", items[index].id);
        items[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }
    list.addEventListener("htmx:afterSwap", function () {
      var count = options().length;
      open(count > 0 && input.value.trim() !== "" && document.activeElement === input);
      if (status) {
        status.textContent = input.value.trim() === "" ? "" :
          count ? count + (count === 1 ? " suggestion" : " suggestions") + ", use up and down arrows" : "No movies match";
      }
    });
    input.addEventListener("keydown", function (event) {
      var items = options();
      if (event.key === "ArrowDown" && items.length) {
        event.preventDefault();
        open(true);
        highlight(active + 1 < items.length ? active + 1 : 0);
      } else if (event.key === "ArrowUp" && items.length) {
        event.preventDefault();
        open(true);
        highlight(active > 0 ? active - 1 : items.length - 1);
      } else if (event.key === "Enter" && active >= 0 && !list.hidden) {
        event.preventDefault();
        window.location.assign(items[active].dataset.href);
      } else if (event.key === "Escape" && !list.hidden) {
        event.preventDefault();  // the first Escape closes the list; only a second clears the search box
        open(false);
      }
    });
    // mousedown, not click: it comes before the input's blur closes the list.
    list.addEventListener("mousedown", function (event) {
      var option = event.target.closest('[role="option"]');
      if (option) { event.preventDefault(); window.location.assign(option.dataset.href); }
    });
    input.addEventListener("input", function () { if (input.value.trim() === "") { list.innerHTML = ""; open(false); } });
    input.addEventListener("blur", function () { setTimeout(function () { open(false); }, 150); });
    input.addEventListener("focus", function () { if (options().length && input.value.trim() !== "") { open(true); } });
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll('input[role="combobox"]'), setup);
  });
})();
