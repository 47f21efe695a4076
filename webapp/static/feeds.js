/* Calendar feeds: copy a feed's address to the clipboard ([data-copy] buttons in feeds/_links.html).
 * Falls back to selecting the address's text field where the Clipboard API is unavailable (plain http). */
(function () {
  "use strict";
  if (window.roomsyncFeeds) return;
  window.roomsyncFeeds = true;

  function announce(button, message) {
    var box = button.closest(".feed-links");
    var status = box && box.querySelector(".feed-copied");
    if (status) status.textContent = message;
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = message;
    setTimeout(function () { button.textContent = label; }, 2000);
  }

  function fallback(button, text) {
    var field = button.parentElement.querySelector("input");
    if (!field) return false;
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var text = button.dataset.copy;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { announce(button, "Copied"); },
        function () { announce(button, fallback(button, text) ? "Copied" : "Select and copy"); }
      );
    } else {
      announce(button, fallback(button, text) ? "Copied" : "Select and copy");
    }
  });
})();
