// ipywidgets' html-manager 1.0.6 typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue);
// Sphinx loads MathJax 3, which has no Hub. Give it a Hub whose Queue typesets with the v3 API.
(function () {
  function patch() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          if (mj.typesetPromise && job && job[2]) { mj.typesetPromise([job[2]]); }
        }
      };
    }
  }
  patch();
  document.addEventListener("DOMContentLoaded", patch);
  window.addEventListener("load", patch);
})();
