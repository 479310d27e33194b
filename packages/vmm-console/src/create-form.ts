import { create } from "@bufbuild/protobuf";
import { type CreateSandboxRequest, CreateSandboxRequestSchema } from "@vmm/proto";
import type { Api } from "./api.js";
import { h } from "./dom.js";
import { InputError } from "./errors.js";
import { parseLabels } from "./labels.js";

/** Options of `CreateForm`. */
export interface CreateFormOptions {
  readonly api: Api;
  readonly onError: (action: string, err: unknown) => void;
  /** Called with the new sandbox's id once Create answered. */
  readonly onCreated: (id: string) => void;
}

/**
 * The Create form: id, labels, limits (vCPUs, memory) and image. The image field sends
 * CreateSandboxRequest.image (wire field 7) as typed and suggests the images the daemon has
 * pulled (ListImages, asked each time the field gets focus); any other reference is pulled
 * by the Create itself, and the daemon's answer, or its error, is shown.
 */
export class CreateForm {
  readonly el: HTMLFormElement;
  private readonly fields = {
    id: h("input", { id: "create-id", name: "id", placeholder: "generated", autocomplete: "off" }),
    labels: h("input", { id: "create-labels", name: "labels", placeholder: "team=web, env=dev" }),
    vcpus: h("input", {
      id: "create-vcpus",
      name: "vcpus",
      type: "number",
      min: "1",
      placeholder: "default",
    }),
    memory: h("input", {
      id: "create-memory",
      name: "memory",
      type: "number",
      min: "1",
      placeholder: "default",
    }),
    image: h("input", {
      id: "create-image",
      name: "image",
      placeholder: "default rootfs",
      list: "create-image-list",
      autocomplete: "off",
      onfocus: () => void this.suggestImages(),
    }),
  };
  private readonly imageList = h("datalist", { id: "create-image-list" });
  private readonly options: CreateFormOptions;

  constructor(options: CreateFormOptions) {
    this.options = options;
    const field = (label: string, input: HTMLInputElement) =>
      h("label", { for: input.id }, label, input);
    this.el = h(
      "form",
      {
        id: "create",
        onsubmit: (e) => {
          e.preventDefault();
          void this.submit();
        },
      },
      h("h2", {}, "Create a sandbox"),
      field("ID", this.fields.id),
      field("Labels", this.fields.labels),
      field("vCPUs", this.fields.vcpus),
      field("Memory (MiB)", this.fields.memory),
      field("Image", this.fields.image),
      this.imageList,
      h("button", { type: "submit" }, "Create"),
    );
  }

  /** The request the form describes; throws an InputError for a field the console can check. */
  request(): CreateSandboxRequest {
    const f = this.fields;
    const positive = (name: string, value: string): number | undefined => {
      if (value.trim() === "") return undefined;
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1)
        throw new InputError(`${name}: ${value} is no positive integer`);
      return n;
    };
    const vcpus = positive("vCPUs", f.vcpus.value);
    const memory = positive("memory", f.memory.value);
    return create(CreateSandboxRequestSchema, {
      id: f.id.value.trim(),
      labels: parseLabels(f.labels.value),
      image: f.image.value.trim(),
      ...((vcpus !== undefined || memory !== undefined) && {
        limits: { vcpus: vcpus ?? 0, memoryMib: BigInt(memory ?? 0) },
      }),
    });
  }

  /** Fills the image suggestions with the pulled images (none when the daemon has no image store). */
  private async suggestImages(): Promise<void> {
    try {
      const { images } = await this.options.api.images.listImages({});
      this.imageList.replaceChildren(
        ...images.map((i) => h("option", { value: i.reference, label: i.digest.slice(0, 19) })),
      );
    } catch {
      // UNIMPLEMENTED (images off) or unreachable: typing a reference still works.
      this.imageList.replaceChildren();
    }
  }

  private async submit(): Promise<void> {
    try {
      const created = await this.options.api.sandboxes.create(this.request());
      this.fields.id.value = "";
      this.options.onCreated(created.id);
    } catch (err) {
      this.options.onError("Create", err);
    }
  }
}
