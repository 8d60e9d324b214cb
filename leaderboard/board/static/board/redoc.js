// Starts ReDoc on the API's schema under the Content-Security-Policy: ReDoc gives the
// <style> elements it adds this script's nonce, which the policy allows. Its search is off:
// it runs in a worker made from a blob: URL, and the policy runs the site's script files only.
(function () {
  var script = document.currentScript;
  window.Redoc.init(
    script.getAttribute("data-schema-url"),
    { nonce: script.nonce, disableSearch: true },
    document.getElementById("redoc")
  );
})();
