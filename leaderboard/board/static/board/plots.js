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

  // A legend name broken into lines of at most LEGEND_LINE_CHARS characters (at spaces; a
  // longer word is cut, never inside a character reference), so that on a phone a long
  // entry name stays whole inside the plot instead of running past its edge.
  var LEGEND_LINE_CHARS = 34;
  function wrap(text) {
    if (typeof text !== "string" || text.length <= LEGEND_LINE_CHARS) return text;
    var lines = [], line = "";
    text.split(" ").forEach(function (word) {
      while (word.length > LEGEND_LINE_CHARS) {
        var cut = word.slice(0, LEGEND_LINE_CHARS);
        var amp = cut.lastIndexOf("&");
        if (amp > 0 && cut.indexOf(";", amp) < 0) cut = cut.slice(0, amp);
        if (line) { lines.push(line); line = ""; }
        lines.push(cut);
        word = word.slice(cut.length);
      }
      if (line && line.length + 1 + word.length > LEGEND_LINE_CHARS) { lines.push(line); line = word; }
      else line = line ? line + " " + word : word;
    });
    if (line) lines.push(line);
    return lines.join("<br>");
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
      // The axes take the room their tick labels need (rotated group names at the bottom are
      // not cut), and the right margin kept for a legend beside the plot goes to the plot.
      ["yaxis", "xaxis"].forEach(function (name) {
        var axis = layout[name] = layout[name] || {};
        if (axis.ticktext) axis.ticktext = axis.ticktext.map(shorten);
        axis.automargin = true;
      });
      layout.margin = Object.assign({}, layout.margin, { r: 16 });
      (fig.data || []).forEach(function (trace) { if (trace.name) trace.name = wrap(trace.name); });
    }
    // On a wide screen the mode bar shows while the pointer is over the plot, not over the
    // title all the time.
    Plotly.newPlot(el, fig.data || [], layout, {
      responsive: true, displaylogo: false, displayModeBar: narrow ? false : "hover"
    });
  });
})();
