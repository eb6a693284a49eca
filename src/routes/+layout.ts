// A static site: every page is prerendered; the engine runs client-side only.
export const prerender = true;
export const ssr = false;
