// Values fixed at build time: the agent's version and the Metaflow pin from image/runtime-pin.txt.
declare const __AGENT_VERSION__: string
declare const __RUNTIME_PIN__: string

export const AGENT_VERSION: string = __AGENT_VERSION__
/** The one pin of the Metaflow runtime; the image bakes the same file. */
export const RUNTIME_PIN: string = __RUNTIME_PIN__
