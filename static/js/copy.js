// Copy buttons: a button with data-copy puts that text on the clipboard and says so for a moment.
// Delegated from the document, so buttons in fragments htmx swaps in later work too.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const label = button.textContent;
  navigator.clipboard.writeText(button.dataset.copy).then(
    () => { button.textContent = "Copied"; },
    () => { button.textContent = "Copy failed"; },
  );
  setTimeout(() => { button.textContent = label; }, 1500);
});
