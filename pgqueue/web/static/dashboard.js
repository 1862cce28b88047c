// Progressive enhancement only: every page reads and acts without this file.
// A "select all" box over the jobs table, shown once this script runs.
"use strict";
document.querySelectorAll("input[data-select-all]").forEach((box) => { box.hidden = false; });
document.addEventListener("change", (event) => {
  const all = event.target.closest("input[data-select-all]");
  if (!all) return;
  all.form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = all.checked; });
});
