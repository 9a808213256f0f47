package vpn

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wintun"
)

// canOffload: segmentation offload is Linux's.
const canOffload = false

// ringCapacity is the wintun session's ring (8 MiB, as wireguard-go's).
const ringCapacity = 0x800000

// openTUN makes a wintun adapter named name (wintun.dll must be beside
// skywire.exe or in the system's DLL path: https://www.wintun.net). The
// adapter, and its routes, go when it is closed.
func openTUN(name string, _ bool) (tun, error) {
	ad, err := wintun.CreateAdapter(name, "Skywire", nil)
	if err != nil {
		return nil, fmt.Errorf("making the wintun adapter %s (is wintun.dll beside skywire.exe? https://www.wintun.net): %w", name, err)
	}
	s, err := ad.StartSession(ringCapacity)
	if err != nil {
		ad.Close()
		return nil, fmt.Errorf("starting the wintun session: %w", err)
	}
	closed, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		s.End()
		ad.Close()
		return nil, err
	}
	return &wintunTUN{name: name, ad: ad, s: s, closed: closed}, nil
}

// wintunTUN is a wintun adapter's session: one IP packet per Read and
// Write.
type wintunTUN struct {
	name   string
	ad     *wintun.Adapter
	s      wintun.Session
	closed windows.Handle // set by Close: ends a waiting Read

	mu   sync.RWMutex // Close waits out Reads and Writes in progress
	done bool
}

func (t *wintunTUN) Name() string { return t.name }

func (t *wintunTUN) Read(p []byte) (int, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for !t.done {
		pkt, err := t.s.ReceivePacket()
		switch {
		case err == nil:
			n := copy(p, pkt)
			t.s.ReleaseReceivePacket(pkt)
			return n, nil
		case errors.Is(err, windows.ERROR_NO_MORE_ITEMS):
			t.mu.RUnlock()
			windows.WaitForMultipleObjects([]windows.Handle{t.s.ReadWaitEvent(), t.closed}, false, windows.INFINITE)
			t.mu.RLock()
		case errors.Is(err, windows.ERROR_HANDLE_EOF):
			return 0, os.ErrClosed
		default:
			return 0, err
		}
	}
	return 0, os.ErrClosed
}

func (t *wintunTUN) Write(p []byte) (int, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.done {
		return 0, os.ErrClosed
	}
	pkt, err := t.s.AllocateSendPacket(len(p))
	if err != nil {
		if errors.Is(err, windows.ERROR_BUFFER_OVERFLOW) {
			return len(p), nil // the ring is full: dropped, as a full NIC queue drops
		}
		return 0, err
	}
	copy(pkt, p)
	t.s.SendPacket(pkt)
	return len(p), nil
}

func (t *wintunTUN) Close() error {
	windows.SetEvent(t.closed)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	t.done = true
	t.s.End()
	windows.CloseHandle(t.closed)
	return t.ad.Close()
}

// devConn: only Linux's visor takes a TUN over; here the app pumps.
func devConn(tun) (syscall.Conn, bool) { return nil, false }
