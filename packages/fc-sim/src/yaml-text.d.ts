// esbuild (scripts/build.mjs) loads `.yaml` imports as text.
declare module "*.yaml" {
  const text: string;
  export default text;
}
