// Keyboard rating on /rate/<session>: digits score the highlighted question and move on, Enter saves.
(function () {
  "use strict";
  const form = document.getElementById("rate-form");
  if (!form) return;
  const groups = Array.from(form.querySelectorAll(".score-group"));
  const message = document.getElementById("rate-message");
  const valueOf = (group) => {
    const checked = group.querySelector("input:checked");
    return checked ? checked.value : null;
  };
  let active = groups.findIndex((g) => valueOf(g) === null);
  if (active < 0) active = 0;

  function show() {
    groups.forEach((g, i) => g.classList.toggle("active", i === active));
  }
  function missing() {
    return groups.filter((g) => valueOf(g) === null).map((g) => g.querySelector("legend").firstChild.textContent.trim());
  }
  function choose(digit) {
    const radio = groups[active].querySelector('input[value="' + digit + '"]');
    radio.checked = true;
    const next = groups.findIndex((g, i) => i > active && valueOf(g) === null);
    if (next >= 0) active = next;
    else if (active < groups.length - 1) active += 1;
    show();
  }
  groups.forEach((g, i) => g.addEventListener("click", () => { active = i; show(); }));
  form.addEventListener("submit", (event) => {
    const gaps = missing();
    if (gaps.length) {
      event.preventDefault();
      message.textContent = "Still to score: " + gaps.join(", ");
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"))) return;
    const key = event.key;
    if (key >= "1" && key <= "5") {
      event.preventDefault();
      choose(key);
    } else if (key === "Enter") {
      event.preventDefault();
      if (typeof form.requestSubmit === "function") form.requestSubmit();
      else form.submit();
    } else if (key === "Backspace") {
      event.preventDefault();
      const checked = groups[active].querySelector("input:checked");
      if (checked) checked.checked = false;
      else if (active > 0) active -= 1;
      show();
    } else if (key === "r" || key === "h" || key === "f") {
      active = { r: 0, h: 1, f: 2 }[key];
      show();
    } else if (key === "ArrowLeft" || key === "ArrowRight") {
      const link = document.getElementById(key === "ArrowLeft" ? "prev" : "next");
      if (link) {
        event.preventDefault();
        window.location.href = link.href;
      }
    }
  });
  show();
})();
