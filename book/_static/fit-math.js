/* Display equations that fit their column (issue 25.3), beside fit.css.
 *
 * MathJax 3's CommonHTML output cannot break a long equation into lines (MathJax 4 can),
 * and the theme puts each display equation in a box that scrolls sideways: a reader who
 * skims or prints the page sees it cut. Once MathJax has typeset the page, and again when
 * the window is resized or a <details> opens, every display equation wider than its box is
 * scaled down to fit (CommonHTML is sized in em: one font-size scales all of it), but never
 * below MIN_SCALE: 70% of the text's size, the size of a subscript. An equation that would
 * need less stays at 70% and scrolls, and .ci/browser_test.py reports it: its source must
 * break it into lines (an aligned or multline environment). Nothing here runs without
 * MathJax on the page. */
(function () {
  "use strict";
  var MIN_SCALE = 0.7;

  function fit(container) {
    var math = container.querySelector(":scope > mjx-math");
    if (!math) return;
    math.style.fontSize = "";
    var box = container.clientWidth;
    if (box === 0 || container.scrollWidth <= box) return; // hidden, or fits as it is
    var scale = Math.max(MIN_SCALE, box / container.scrollWidth);
    // the box's width follows its content in the theme's flex layout, and widths are
    // rounded: step down by 1% until it fits
    for (var i = 0; i < 10; i++) {
      math.style.fontSize = (100 * scale).toFixed(1) + "%";
      if (container.scrollWidth <= container.clientWidth || scale <= MIN_SCALE) break;
      scale = Math.max(MIN_SCALE, scale - 0.01);
    }
  }

  function fitAll() {
    var all = document.querySelectorAll('mjx-container[jax="CHTML"][display="true"]');
    for (var i = 0; i < all.length; i++) fit(all[i]);
  }

  var pending = false;
  function later() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; fitAll(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || !mj.startup || !mj.startup.promise) return;
    mj.startup.promise.then(function () {
      fitAll();
      window.addEventListener("resize", later);
      document.addEventListener("toggle", later, true); // <details> (hidden code cells)
      if (document.fonts && document.fonts.ready) document.fonts.ready.then(fitAll);
    });
  });
})();
