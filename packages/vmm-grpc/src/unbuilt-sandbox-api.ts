import { UnimplementedError } from "@vmm/core";
import type { SandboxApi } from "./sandbox-api.js";

const unbuilt = (feature: string) => (): never => {
  throw new UnimplementedError(`${feature} is not built yet in this daemon`);
};

/**
 * A SandboxApi whose every method answers UNIMPLEMENTED, naming the feature.
 * Used when the daemon runs without a sandbox backend (`--no-sandboxes`), so
 * health, reflection and the API surface can be served alone.
 */
export function createUnbuiltSandboxApi(): SandboxApi {
  return {
    create: unbuilt("sandbox lifecycle (Create)"),
    run: unbuilt("running code in sandboxes (Run)"),
    exec: unbuilt("interactive sessions (Exec)"),
    stop: unbuilt("sandbox lifecycle (Stop)"),
    pause: unbuilt("pause and resume (Pause)"),
    resume: unbuilt("pause and resume (Resume)"),
    updateNetworkPolicy: unbuilt("egress policies (UpdateNetworkPolicy)"),
    exposePort: unbuilt("ports (ExposePort)"),
    remove: unbuilt("sandbox lifecycle (Remove)"),
    inspect: unbuilt("sandbox lifecycle (Inspect)"),
    list: unbuilt("sandbox lifecycle (List)"),
    events: unbuilt("sandbox lifecycle (Events)"),
    listProcesses: unbuilt("processes (ListProcesses)"),
    signalProcess: unbuilt("processes (SignalProcess)"),
  };
}
