// Draws every plotly figure of the page: a <div data-figure="ID"> next to a
// <script type="application/json" id="ID"> holding {data, layout}.
(function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var src = document.getElementById(el.getAttribute("data-figure"));
    if (!src) return;
    var fig = JSON.parse(src.textContent);
    var layout = fig.layout || {};
    // On a narrow screen (a phone) the mode bar would sit on the title, and dragging a plot
    // would zoom it instead of scrolling the page: both are off there; tapping still shows
    // the values.
    var narrow = el.clientWidth < 600;
    if (narrow) layout.dragmode = false;
    Plotly.newPlot(el, fig.data || [], layout, {
      responsive: true, displaylogo: false, displayModeBar: !narrow
    });
  });
})();
