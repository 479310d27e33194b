import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { type ImagePullProgress, InvalidArgumentError, type PulledImage } from "@vmm/core";
import * as pb from "@vmm/proto";
import type { ImageApi } from "./image-api.js";

/**
 * Registers sandbox.v1.ImageService. Without an ImageApi every method answers
 * UNIMPLEMENTED. PullImage streams the pull's progress: reports are
 * snapshots, so a slow reader gets the latest one rather than a backlog; the
 * last message always has done = true.
 */
export function registerImageService(router: ConnectRouter, images: ImageApi | undefined): void {
  const api = (): ImageApi => {
    if (images) return images;
    throw new ConnectError("images are not wired in this server", Code.Unimplemented);
  };
  router.service(pb.ImageService, {
    async *pullImage(req, ctx) {
      if (req.reference === "") throw new InvalidArgumentError("reference", "must not be empty");
      let latest: ImagePullProgress | undefined;
      let wake: (() => void) | undefined;
      let outcome: { ok: true; image: PulledImage } | { ok: false; err: unknown } | undefined;
      api()
        .pull(req.reference, {
          signal: ctx.signal,
          onProgress: (p) => {
            latest = p;
            wake?.();
          },
        })
        .then(
          (image) => {
            outcome = { ok: true, image };
            wake?.();
          },
          (err: unknown) => {
            outcome = { ok: false, err };
            wake?.();
          },
        );
      let sentDone = false;
      for (;;) {
        if (latest) {
          const p = latest;
          latest = undefined;
          sentDone ||= p.done;
          yield progressToProto(p);
          continue;
        }
        if (outcome) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      if (!outcome.ok) throw outcome.err;
      if (!sentDone) {
        const { image } = outcome;
        yield progressToProto({
          status: "pulled",
          currentBytes: image.sizeBytes,
          totalBytes: image.sizeBytes,
          digest: image.manifestDigest,
          done: true,
        });
      }
    },
    async listImages() {
      const list = await api().list();
      return create(pb.ListImagesResponseSchema, {
        images: list.map((i) =>
          create(pb.ImageInfoSchema, {
            reference: i.reference,
            digest: i.manifestDigest,
            sizeBytes: BigInt(i.sizeBytes),
            createdAt: BigInt(Math.floor(i.pulledAtMs / 1000)),
          }),
        ),
      });
    },
    async removeImage(req) {
      if (req.reference === "") throw new InvalidArgumentError("reference", "must not be empty");
      await api().remove(req.reference);
      return {};
    },
  });
}

function progressToProto(p: ImagePullProgress): pb.PullProgress {
  return create(pb.PullProgressSchema, {
    status: p.status,
    currentBytes: BigInt(p.currentBytes),
    totalBytes: BigInt(p.totalBytes),
    digest: p.digest,
    done: p.done,
  });
}
