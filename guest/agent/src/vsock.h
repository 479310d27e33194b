/* Whether the guest has a vsock transport to the host (a virtio-vsock device), the agent's only channel. */
#ifndef VMM_VSOCK_H
#define VMM_VSOCK_H

/*
 * The guest's vsock CID (>= 3), or 0 when there is no guest-to-host transport: AF_VSOCK missing from the
 * kernel, or no virtio-vsock device (the kernel then reports VMADDR_CID_ANY, or VMADDR_CID_LOCAL from the
 * loopback transport). *why says which, for the console.
 */
unsigned vsock_guest_cid(const char **why);
#endif
