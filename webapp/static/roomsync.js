/* Roomsync progressive enhancement (the pages work without it).
 * - The booking dialog: opens when htmx fills #dialog-body, closes on its close buttons, a click on the
 *   backdrop or Escape (native <dialog>), gives focus back to what opened it.
 * - "booking-changed" (HX-Trigger after a save or cancel): closes the dialog, shows the message.
 * - The grid keeps its scroll position when it reloads itself.
 * - A failed htmx request shows the server's message instead of doing nothing.
 */
(function () {
  "use strict";

  function flash(message, category) {
    var box = document.getElementById("flashes");
    if (!box || !message) return;
    var p = document.createElement("p");
    p.className = "flash flash-" + (category || "success");
    p.textContent = message;
    box.replaceChildren(p);
  }

  function dialog() { return document.getElementById("booking-dialog"); }
  var opener = null;

  document.addEventListener("htmx:afterSwap", function (event) {
    var d = dialog();
    var target = event.detail.target;
    if (d && target.id === "dialog-body" && !d.open && target.childElementCount) {
      opener = document.activeElement;
      d.showModal();
      var first = d.querySelector("[autofocus], input:not([type=hidden]), select, textarea, button");
      if (first) first.focus();
    }
  });

  document.addEventListener("click", function (event) {
    var d = dialog();
    if (!d) return;
    if (event.target.closest("[data-close-dialog]") || event.target === d) d.close();
  });

  document.addEventListener("close", function (event) {
    if (event.target !== dialog()) return;
    document.getElementById("dialog-body").replaceChildren();
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  }, true);

  document.body.addEventListener("booking-changed", function (event) {
    var d = dialog();
    if (d && d.open) d.close();
    flash(event.detail && event.detail.message, "success");
  });

  var scroll = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var pane = event.detail.target.querySelector && event.detail.target.querySelector(".grid-scroll");
    if (event.detail.target.id === "booking-grid" && pane) scroll = [pane.scrollLeft, pane.scrollTop];
  });
  document.addEventListener("htmx:afterSettle", function () {
    var pane = document.querySelector("#booking-grid .grid-scroll");
    if (pane && scroll) { pane.scrollLeft = scroll[0]; pane.scrollTop = scroll[1]; }
    scroll = null;
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = "";
    try {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var message = page.querySelector(".error-page p");
      text = message ? message.textContent.trim() : "";
    } catch (e) { /* keep the generic message */ }
    flash(text || ("Something went wrong (" + xhr.status + "). Reload the page and try again."), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    flash("Roomsync cannot be reached. Check the connection and try again.", "error");
  });

  /* First view of a grid: scroll to the current time (today) or the day's first booking. */
  var pane = document.querySelector("#booking-grid .grid-scroll");
  var slot = pane && pane.querySelector(".col .s");
  if (slot) {
    var row = parseFloat(pane.querySelector(".grid").dataset.focusRow) || 0;
    pane.scrollTop = Math.max(0, row * slot.offsetHeight - (row ? slot.offsetHeight : 0));
  }
})();
