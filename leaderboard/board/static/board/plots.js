// Draws every plotly figure of the page: a <div data-figure="ID"> next to a
// <script type="application/json" id="ID"> holding {data, layout}.
(function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var src = document.getElementById(el.getAttribute("data-figure"));
    if (!src) return;
    var fig = JSON.parse(src.textContent);
    Plotly.newPlot(el, fig.data || [], fig.layout || {}, { responsive: true, displaylogo: false });
  });
})();
