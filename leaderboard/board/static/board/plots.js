// Draws every plotly figure of the page: a <div data-figure="ID"> next to a
// <script type="application/json" id="ID"> holding {data, layout}.
(function () {
  if (!window.Plotly) return;
  var NARROW_LABEL_CHARS = 18;

  // A tick label cut to NARROW_LABEL_CHARS characters with an ellipsis, never inside one of
  // the character references (&lt; &amp; ...) that make participants' markup inert.
  function shorten(text) {
    if (typeof text !== "string" || text.length <= NARROW_LABEL_CHARS) return text;
    var cut = text.slice(0, NARROW_LABEL_CHARS - 1);
    var amp = cut.lastIndexOf("&");
    if (amp >= 0 && cut.indexOf(";", amp) < 0) cut = cut.slice(0, amp);
    return cut.replace(/\s+$/, "") + "\u2026";
  }

  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var src = document.getElementById(el.getAttribute("data-figure"));
    if (!src) return;
    var fig = JSON.parse(src.textContent);
    var layout = fig.layout || {};
    // On a narrow screen (a phone) the mode bar would sit on the title, and dragging a plot
    // would zoom it instead of scrolling the page: both are off there; tapping still shows
    // the values.
    var narrow = el.clientWidth < 600;
    if (narrow) {
      layout.dragmode = false;
      // Names on a category axis (the forest plot's) are cut shorter than on a wide screen,
      // so that the plot keeps most of the width; hovering still shows them whole.
      ["yaxis", "xaxis"].forEach(function (name) {
        var axis = layout[name];
        if (axis && axis.ticktext) axis.ticktext = axis.ticktext.map(shorten);
      });
    }
    Plotly.newPlot(el, fig.data || [], layout, {
      responsive: true, displaylogo: false, displayModeBar: !narrow
    });
  });
})();
