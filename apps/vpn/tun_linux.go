package vpn

import (
	"fmt"
	"os"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// Linux TUN offload flags (linux/if_tun.h).
const (
	tunFCSUM = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
)

// canOffload: this system's TUN can carry segmentation-offload packets.
const canOffload = true

// openTUN makes a TUN device named name (not persistent: it goes with the
// process, so a crash leaves no device). With offload, every packet read
// or written starts with its virtio-net header and may be a 64 KiB
// segment the kernel cuts (or has not yet cut) into MTU-sized packets:
// one read or write per 64 KiB instead of per packet.
func openTUN(name string, offload bool) (tun, error) {
	if !offload {
		ifc, err := water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: name}})
		if err != nil {
			return nil, err
		}
		return ifc, nil
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("/dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("making %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: segmentation offload: %w", name, err)
	}
	// Non-blocking, so that the runtime poller waits on it and Close ends
	// a read in progress.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &offloadTUN{File: os.NewFile(uintptr(fd), "/dev/net/tun"), name: ifr.Name()}, nil
}

// offloadTUN is a TUN with virtio-net headers.
type offloadTUN struct {
	*os.File
	name string
}

func (t *offloadTUN) Name() string { return t.name }

// devConn is dev's descriptor, to hand to the visor.
func devConn(dev tun) (syscall.Conn, bool) {
	switch d := dev.(type) {
	case *offloadTUN:
		return d.File, true
	case *water.Interface:
		sc, ok := d.ReadWriteCloser.(syscall.Conn)
		return sc, ok
	}
	return nil, false
}
