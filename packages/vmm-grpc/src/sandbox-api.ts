import type {
  CreateSandboxSpec,
  EventAction,
  NetworkPolicy,
  ProcessSession,
  ProcessSpec,
  ProcessTarget,
  ProcessView,
  SandboxEvent,
  SandboxStateName,
  SandboxView,
} from "@vmm/core";

/** What the SandboxService needs from vmm-core (SandboxManager implements it). */
export interface SandboxApi {
  /** `signal`: the caller went away; stops a pull the Create is waiting for (nothing else). */
  create(spec: CreateSandboxSpec, options?: { signal?: AbortSignal }): Promise<SandboxView>;
  run(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession>;
  exec(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession>;
  stop(id: string, timeoutSeconds: number): Promise<void>;
  pause(id: string): Promise<SandboxView>;
  resume(id: string): Promise<SandboxView>;
  updateNetworkPolicy(id: string, policy: NetworkPolicy): Promise<void>;
  exposePort(id: string, guestPort: number, protocol: string): Promise<{ hostAddress: string }>;
  remove(id: string, options: { force: boolean }): Promise<void>;
  inspect(id: string): SandboxView;
  list(filter: {
    state?: SandboxStateName;
    labels: Readonly<Record<string, string>>;
  }): SandboxView[];
  events(
    filter: { id?: string; action?: EventAction },
    signal: AbortSignal,
  ): AsyncIterable<SandboxEvent>;
  listProcesses(id: string): ProcessView[];
  signalProcess(id: string, target: ProcessTarget, signal: string): Promise<void>;
}
