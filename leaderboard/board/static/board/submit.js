// Checks the submission form in the browser before the upload starts; the server checks
// the same rules again.
(function () {
  var form = document.getElementById("submit-form");
  if (!form) return;
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
  var maxImageBytes = parseInt(form.getAttribute("data-max-image-bytes"), 10);
  var track = form.querySelector("[name=track]");

  function isContainer() { return track && track.value === "container"; }

  // Show the upload field of the chosen track only: a CSV, or a `docker save` archive. An
  // image is sent to the container track's address (?track=container), whose body limit is
  // the image limit; the form's own address takes prediction files only.
  function showTrackFields() {
    var file = form.querySelector(".field-file"), image = form.querySelector(".field-image");
    if (file) file.hidden = isContainer();
    if (image) image.hidden = !isContainer();
    var url = new URL(form.action || window.location.href, window.location.href);
    if (isContainer()) url.searchParams.set("track", "container");
    else url.searchParams.delete("track");
    form.action = url.pathname + url.search;
  }
  if (track) { track.addEventListener("change", showTrackFields); showTrackFields(); }

  function checkImage(input) {
    var f = input.files && input.files[0];
    if (!f) return "Choose the image archive (the output of docker save).";
    if (!/\.(tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$/i.test(f.name)) return "The image must be a .tar archive from docker save (optionally compressed).";
    if (f.size === 0) return "The archive is empty.";
    if (maxImageBytes && f.size > maxImageBytes) return "The archive is " + (f.size / 1048576).toFixed(1) + " MiB, over the " + (maxImageBytes / 1048576) + " MiB limit.";
    return "";
  }

  function say(field, msg) {
    var box = field.closest(".field");
    var out = box ? box.querySelector(".client-error") : null;
    if (out) out.textContent = msg || "";
    if (box) box.classList.toggle("has-error", !!msg);
  }

  function checkFile(input) {
    var f = input.files && input.files[0];
    if (!f) return "Choose the prediction file.";
    if (!/\.(csv|csv\.gz|gz|txt)$/i.test(f.name)) return "The file must be a .csv or .csv.gz prediction file.";
    if (f.size === 0) return "The file is empty.";
    if (maxBytes && f.size > maxBytes) return "The file is " + (f.size / 1048576).toFixed(1) + " MiB, over the " + (maxBytes / 1048576) + " MiB limit: compress it with gzip.";
    return "";
  }

  function validate() {
    var ok = true;
    form.querySelectorAll("input, textarea, select").forEach(function (el) {
      if (el.type === "hidden" || el.type === "checkbox" || el.type === "radio") return;
      var msg = "";
      if (el.type === "file") {
        if ((el.name === "image") !== isContainer()) { say(el, ""); return; }
        msg = el.name === "image" ? checkImage(el) : checkFile(el);
      }
      else if (!el.checkValidity()) msg = el.validationMessage;
      say(el, msg);
      if (msg) ok = false;
    });
    var boxes = Array.prototype.slice.call(form.querySelectorAll(".modalities input[type=checkbox]"));
    var modErr = document.getElementById("modality-error");
    if (boxes.length && !boxes.some(function (b) { return b.checked; })) {
      if (modErr) modErr.textContent = boxes.length === 2
        ? "Tick the inputs your model uses: EHR, CXR or both."
        : "Tick the inputs your model uses (one at least).";
      ok = false;
    } else if (modErr) modErr.textContent = "";
    return ok;
  }

  form.addEventListener("change", function (e) { if (e.target.type === "file") say(e.target, e.target.name === "image" ? checkImage(e.target) : checkFile(e.target)); });
  form.addEventListener("submit", function (e) {
    if (!validate()) { e.preventDefault(); var first = form.querySelector(".has-error, #modality-error:not(:empty)"); if (first) first.scrollIntoView({ block: "center" }); }
    else { var b = form.querySelector("button[type=submit]"); if (b) { b.disabled = true; b.textContent = "Uploading…"; } }
  });
})();
