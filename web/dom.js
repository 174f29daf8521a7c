// Building the page's elements from data: text is always set as text (never parsed as HTML).

/** An element with attributes (`class`, `data-*`, `aria-*`, properties such as `hidden`) and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name in node && !name.includes("-")) node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

/** A badge for an alarm state, with the alarm's name when given ("predictive: ACTIVE"). */
export function stateBadge(state, name) {
  return el("span", { class: `state state-${state}`, "data-state": state }, name ? `${name}: ${state}` : state);
}

/** A definition list's entries from [term, value] pairs. */
export function facts(list, pairs) {
  list.replaceChildren(...pairs.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))));
}
