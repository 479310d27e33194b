#include "vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <unistd.h>

unsigned vsock_guest_cid(const char **why) {
  /* /dev/vsock is the vsock core's misc device; its ioctl asks the registered transports. */
  int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *why = errno == ENOENT ? "no /dev/vsock: the kernel has no AF_VSOCK (CONFIG_VSOCKETS)" : "cannot open /dev/vsock";
    return 0;
  }
  unsigned cid = VMADDR_CID_ANY;
  int r = ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid);
  close(fd);
  if (r < 0) {
    *why = "IOCTL_VM_SOCKETS_GET_LOCAL_CID failed";
    return 0;
  }
  if (cid == VMADDR_CID_ANY || cid == VMADDR_CID_LOCAL || cid == VMADDR_CID_HOST) {
    *why = "no virtio-vsock device (the VMM configured no vsock, or CONFIG_VIRTIO_VSOCKETS is missing)";
    return 0;
  }
  *why = "";
  return cid;
}
