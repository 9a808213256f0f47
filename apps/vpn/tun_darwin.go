package vpn

import (
	"syscall"

	"github.com/songgao/water"
)

// canOffload: segmentation offload is Linux's.
const canOffload = false

// openTUN makes a utun device (water; macOS names it utunN itself, so name
// is not used). It goes with the process, and its routes with it.
func openTUN(string, bool) (tun, error) {
	ifc, err := water.New(water.Config{DeviceType: water.TUN})
	if err != nil {
		return nil, err
	}
	return ifc, nil
}

// devConn: only Linux's visor takes a TUN over; here the app pumps.
func devConn(tun) (syscall.Conn, bool) { return nil, false }
