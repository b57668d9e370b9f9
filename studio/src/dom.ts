/**
 * The studio's whole "UI library": `h(tag, props, ...children)` builds an element, `$(id)` finds
 * one. Text goes in as text nodes (never as HTML), so nothing from a file name or an error message
 * can inject markup.
 */

type Props = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;
export type Child = Node | string | number | null | undefined | false | readonly Child[];

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.replace(/^on/, ""), value);
    else if (key === "class") el.className = String(value);
    else if (key in el && key !== "list" && key !== "form")
      (el as unknown as Record<string, unknown>)[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c as readonly Child[]);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el: Node, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

export function select(
  id: string,
  options: readonly (string | { value: string; label: string })[],
  value?: string,
): HTMLSelectElement {
  return h(
    "select",
    { id, name: id },
    options.map((o) => {
      const v = typeof o === "string" ? o : o.value;
      return h("option", { value: v, selected: v === value }, typeof o === "string" ? o : o.label);
    }),
  );
}

export function field(label: string, control: HTMLElement, note?: string): HTMLLabelElement {
  return h(
    "label",
    { class: "field" },
    h("span", { class: "label" }, label),
    control,
    note ? h("small", {}, note) : null,
  );
}

export function numberInput(id: string, value: number, min: number, max: number, step = 1): HTMLInputElement {
  return h("input", {
    id,
    name: id,
    type: "number",
    value: String(value),
    min: String(min),
    max: String(max),
    step: String(step),
  });
}
