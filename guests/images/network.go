package images

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// QEMU's user networking (slirp) gives its guest fixed addresses: the
// guest 10.0.2.15 by DHCP on 10.0.2.0/24, the gateway 10.0.2.2, which also
// stands for the host — a connection to 10.0.2.2:PORT reaches the host's
// 127.0.0.1:PORT (QEMU documentation, "Network emulation", user mode).
const (
	UserNetGuestAddr = "10.0.2.15/24"
	UserNetHostAddr  = "10.0.2.2"
)

// NIC is the name Linux gives the guest's first network interface: the
// initramfs has no udev to rename it.
const NIC = "eth0"

// NICDevice is the QEMU device the guest drives with the e1000e module
// that tools/guestimage puts in the initramfs (Intel 82574L). Its DMA goes
// through QEMU's emulated IOMMU as a real device's does, which is why the
// passthrough test uses it rather than virtio-net (which bypasses the IOMMU
// unless iommu_platform=on).
const NICDevice = "e1000e"

// UserNetArgs are QEMU's arguments for an e1000e on user networking.
func UserNetArgs() []string {
	return []string{"-netdev", "user,id=net0", "-device", NICDevice + ",netdev=net0"}
}

// The guest shell lines CheckNetwork types, in order, between ListNICs and
// the fetch. dhclient is u-root's: it brings the link up (waiting up to 30 s
// for the carrier), asks for an IPv4 lease, at most -retry times with
// -timeout seconds each, and configures the address and the default route.
// It exits 0 whatever happened, so the address is read back with ip.
const (
	ListNICs       = "ls /sys/class/net"
	DHCPCommand    = "dhclient -ipv6=false -timeout 10 -retry 3 " + NIC
	AddressCommand = "ip addr show " + NIC
)

// fetchedFile is where the guest's wget writes the page: u-root's wget
// cannot write to stdout in the initramfs, whose devtmpfs has no
// /dev/stdout link (wget -O - would create a regular file by that name).
const fetchedFile = "/tmp/net-check"

// FetchCommands are the guest shell lines that fetch url with u-root's
// wget and print what came.
func FetchCommands(url string) []string {
	return []string{"wget -O " + fetchedFile + " " + url, "cat " + fetchedFile}
}

// Timeouts of CheckNetwork's steps: DHCP waits for the link and then up to
// -retry × -timeout seconds for a lease; the others are instant on a
// working guest.
const (
	dhcpTimeout    = 90 * time.Second
	commandTimeout = 30 * time.Second
)

// Shell runs one command line at a guest's shell and returns what it
// printed, as Guest.Command does; a test driving the guest some other way
// (under tamavisor) provides its own.
type Shell interface {
	Command(line string, timeout time.Duration) (string, error)
}

// NetworkReport is what CheckNetwork saw.
type NetworkReport struct {
	// DHCP is how long dhclient ran, from typing it to the next prompt:
	// bringing the link up and the lease exchange.
	DHCP time.Duration
	// Address is the guest's IPv4 address on NIC, as ip shows it.
	Address string
	// Body is what the guest fetched from the host.
	Body string
	// Transcript is every command and its output.
	Transcript string
}

// CheckNetwork has a guest on QEMU user networking, at its shell prompt,
// configure NIC by DHCP from QEMU's built-in server and fetch srv's page
// over TCP through the host's loopback. It fails unless the guest gets
// UserNetGuestAddr, the host server sees the request, and the guest prints
// the page the server sent. The report is filled as far as the check got.
func CheckNetwork(sh Shell, srv *HostServer) (NetworkReport, error) {
	var r NetworkReport
	var transcript strings.Builder
	run := func(line string, timeout time.Duration) (string, error) {
		out, err := sh.Command(line, timeout)
		fmt.Fprintf(&transcript, "$ %s\n%s", line, out)
		r.Transcript = transcript.String()
		if err != nil {
			return out, fmt.Errorf("images: network check: %q: %w", line, err)
		}
		return out, nil
	}

	nics, err := run(ListNICs, commandTimeout)
	if err != nil {
		return r, err
	}
	if !containsField(nics, NIC) {
		return r, fmt.Errorf("images: network check: the guest has no %s (it has %q): is the %s device there, and did init load the %s module (cat /proc/modules, dmesg)?",
			NIC, strings.Fields(nics), NICDevice, NICDevice)
	}

	start := time.Now()
	if _, err := run(DHCPCommand, dhcpTimeout); err != nil {
		return r, err
	}
	r.DHCP = time.Since(start)

	addrs, err := run(AddressCommand, commandTimeout)
	if err != nil {
		return r, err
	}
	r.Address = ipv4Address(addrs)
	if r.Address != UserNetGuestAddr {
		return r, fmt.Errorf("images: network check: %s has IPv4 address %q after dhclient, want %s from QEMU's DHCP server",
			NIC, r.Address, UserNetGuestAddr)
	}

	before := srv.Requests()
	var body string
	for _, line := range FetchCommands(srv.GuestURL()) {
		if body, err = run(line, commandTimeout); err != nil {
			return r, err
		}
	}
	// Compared without the line end, which a console may turn into \r\n.
	r.Body = strings.TrimSpace(body)
	if srv.Requests() == before {
		return r, fmt.Errorf("images: network check: the host server at %s saw no request from the guest", srv.Addr())
	}
	if r.Body != strings.TrimSpace(srv.Body()) {
		return r, fmt.Errorf("images: network check: the guest fetched %q, the host server sent %q", body, srv.Body())
	}
	return r, nil
}

func containsField(s, field string) bool {
	for _, f := range strings.Fields(s) {
		if f == field {
			return true
		}
	}
	return false
}

// ipv4Address returns the first "inet ADDR/LEN" of ip addr's output, or "".
func ipv4Address(out string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "inet" {
			return f[1]
		}
	}
	return ""
}

// HostServer is an HTTP server on the host's loopback serving one page, a
// fresh random line, at a path the guest reaches through QEMU's user
// networking as http://10.0.2.2:PORT/PATH.
type HostServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	body string
	path string

	mu       sync.Mutex
	requests int
}

// StartHostServer starts a HostServer on 127.0.0.1 at a free port. Close it.
func StartHostServer() (*HostServer, error) {
	token := make([]byte, 8)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("images: host server: %w", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("images: host server: %w", err)
	}
	s := &HostServer{
		ln:   ln,
		done: make(chan struct{}),
		// The line ends in a newline so that the shell's prompt after
		// cat starts a line, as Guest.Command expects.
		body: "tamavisor host " + hex.EncodeToString(token) + "\n",
		path: "/net-check",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.path, func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(s.body)))
		_, _ = w.Write([]byte(s.body))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the server's host address, 127.0.0.1:PORT.
func (s *HostServer) Addr() string { return s.ln.Addr().String() }

// GuestURL is the page's address as a guest on user networking sees it.
func (s *HostServer) GuestURL() string {
	return "http://" + net.JoinHostPort(UserNetHostAddr, strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)) + s.path
}

// Body is the page.
func (s *HostServer) Body() string { return s.body }

// Requests is how many times the page was served.
func (s *HostServer) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Close stops the server.
func (s *HostServer) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
