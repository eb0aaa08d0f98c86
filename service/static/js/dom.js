// Small DOM helpers every part of the page uses.

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Says `text` to screen readers (a polite live region). */
export function announce(text) {
  $("announcer").textContent = text;
}
