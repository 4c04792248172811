/*
 * cr3-monitor DOMID on|off: switches Xen's vm_event CR3-write monitor for an HVM/PVH domain.
 *
 * Why: with hardware paging (HAP) a guest's CR3 writes never leave the guest, so xentrace has no
 * CR_WRITE records. While the CR3 monitor is on, Xen intercepts every CR3 write (on SVM the
 * CR3-write intercept in the VMCB), and its handler emits the CR_WRITE trace record. No vm_event
 * ring is set up: Xen then drops the monitor events (monitor_traps: "no ring ... continue
 * executing normally") and the guest runs on; only the intercept, and so the trace, remains.
 *
 * Declares the three libxenctrl 4.17 calls it needs (tools/include/xenctrl.h, public/vm_event.h)
 * instead of including the headers: the lab links against the library from Debian's package
 * and has no development package.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct xc_interface_core xc_interface;
xc_interface *xc_interface_open(void *logger, void *dombuild_logger, unsigned open_flags);
int xc_interface_close(xc_interface *xch);
int xc_monitor_write_ctrlreg(xc_interface *xch, uint32_t domain_id, uint16_t index, bool enable,
                             bool sync, uint64_t bitmask, bool onchangeonly);

#define VM_EVENT_X86_CR3 1

int main(int argc, char **argv)
{
    char *end;
    unsigned long domid;
    bool enable;
    xc_interface *xch;
    int rc;

    if ( argc != 3 || (strcmp(argv[2], "on") && strcmp(argv[2], "off")) )
    {
        fprintf(stderr, "usage: cr3-monitor DOMID on|off\n");
        return 2;
    }
    errno = 0;
    domid = strtoul(argv[1], &end, 10);
    if ( errno || *argv[1] == '\0' || *end != '\0' || domid >= 0x7ff0 )
    {
        fprintf(stderr, "cr3-monitor: DOMID must be a domain id below 32752, got \"%s\"\n", argv[1]);
        return 2;
    }
    enable = !strcmp(argv[2], "on");

    xch = xc_interface_open(NULL, NULL, 0);
    if ( !xch )
    {
        fprintf(stderr, "cr3-monitor: xc_interface_open failed: %s\n", strerror(errno));
        return 1;
    }
    /* Asynchronous (sync = false), every write (onchangeonly = false), no CR3 bit mask. */
    rc = xc_monitor_write_ctrlreg(xch, domid, VM_EVENT_X86_CR3, enable, false, 0, false);
    if ( rc )
        fprintf(stderr, "cr3-monitor: xc_monitor_write_ctrlreg(d%lu, CR3, %s): %s\n", domid,
                argv[2], strerror(errno));
    else
        printf("cr3-monitor: d%lu CR3 monitor %s\n", domid, argv[2]);
    xc_interface_close(xch);
    return rc ? 1 : 0;
}
