// Keyboard shortcuts for the label form: A/B choose an answer, 1-4 the strength, S/D/U the safety bin,
// F toggles the flag, Enter submits. Keys typed into text fields are left alone.
(function () {
  const form = document.getElementById("label-form");
  if (!form) return;
  const strengths = ["significantly_better", "better", "slightly_better", "negligibly_better"];
  const safety = { s: "chosen_only_safe", d: "both_safe", u: "both_unsafe" };
  function pick(name, value) {
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) input.checked = true;
  }
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text") || target.tagName === "SELECT") return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "a" || key === "b") pick("choice", key);
    else if (key >= "1" && key <= "4") pick("strength", strengths[Number(key) - 1]);
    else if (key in safety) pick("safety", safety[key]);
    else if (key === "f") { const flag = form.querySelector('input[name="flag"]'); flag.checked = !flag.checked; }
    else if (key === "enter") { event.preventDefault(); form.requestSubmit(); return; }
    else return;
    event.preventDefault();
  });
})();
