package images

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ipAddrEth0 is what u-root v0.16.0's `ip addr show eth0` printed in the
// guest after dhclient on QEMU user networking.
const ipAddrEth0 = `2: eth0: <UP,BROADCAST,MULTICAST> mtu 1500 state UP group default
    link/ether 52:54:00:12:34:56
    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::5054:ff:fe12:3456/64 scope link 
       valid_lft forever preferred_lft forever
`

// fakeNetShell answers CheckNetwork's commands as a guest would; the
// fields choose what goes wrong.
type fakeNetShell struct {
	t        *testing.T
	nics     string
	ipAddr   string
	reach    bool   // wget really fetches from the host server
	cat      string // what cat prints; "" means what wget fetched
	failLine string // a line whose Command fails
	lines    []string
	fetched  string
}

func (f *fakeNetShell) Command(line string, timeout time.Duration) (string, error) {
	f.lines = append(f.lines, line)
	if timeout <= 0 {
		f.t.Errorf("%q run with timeout %v", line, timeout)
	}
	if line == f.failLine {
		return "", errors.New("no prompt")
	}
	switch {
	case line == ListNICs:
		return f.nics, nil
	case line == DHCPCommand:
		return "Configured eth0 with IPv4 DHCP Lease IP 10.0.2.15/24\n", nil
	case line == AddressCommand:
		return f.ipAddr, nil
	case strings.HasPrefix(line, "wget -O "+fetchedFile+" "):
		if !f.reach {
			return "wget: failed to download: connection refused\n", nil
		}
		u, err := url.Parse(strings.Fields(line)[3])
		if err != nil || u.Hostname() != UserNetHostAddr {
			f.t.Errorf("wget of %q, want a URL on %s", line, UserNetHostAddr)
			return "", nil
		}
		// The guest's 10.0.2.2:PORT is the host's 127.0.0.1:PORT.
		resp, err := http.Get("http://127.0.0.1:" + u.Port() + u.Path)
		if err != nil {
			f.t.Errorf("fetching for the fake guest: %v", err)
			return "", nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		f.fetched = string(b)
		return "", nil
	case line == "cat "+fetchedFile:
		if f.cat != "" {
			return f.cat, nil
		}
		return f.fetched, nil
	}
	f.t.Errorf("unexpected command %q", line)
	return "", nil
}

func startHostServer(t *testing.T) *HostServer {
	t.Helper()
	srv, err := StartHostServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing the host server: %v", err)
		}
	})
	return srv
}

func TestCheckNetworkWithFakeGuest(t *testing.T) {
	good := fakeNetShell{nics: "eth0\nlo\n", ipAddr: ipAddrEth0, reach: true}
	for _, tc := range []struct {
		name    string
		edit    func(*fakeNetShell)
		wantErr string // "" for success
	}{
		{"works", func(*fakeNetShell) {}, ""},
		{"no NIC", func(f *fakeNetShell) { f.nics = "lo\n" }, "has no eth0"},
		{"NIC named otherwise", func(f *fakeNetShell) { f.nics = "eth01\nlo\n" }, "has no eth0"},
		{"no lease", func(f *fakeNetShell) { f.ipAddr = strings.ReplaceAll(ipAddrEth0, "    inet 10.0.2.15/24", "") }, `address ""`},
		{"other address", func(f *fakeNetShell) { f.ipAddr = strings.ReplaceAll(ipAddrEth0, "10.0.2.15", "10.0.2.16") }, "10.0.2.16/24"},
		{"host unreached", func(f *fakeNetShell) { f.reach = false; f.cat = "stale\n" }, "saw no request"},
		{"wrong page", func(f *fakeNetShell) { f.cat = "tamavisor host 0000\n" }, "the guest fetched"},
		{"dhclient hangs", func(f *fakeNetShell) { f.failLine = DHCPCommand }, "no prompt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startHostServer(t)
			sh := good
			sh.t = t
			tc.edit(&sh)
			r, err := CheckNetwork(&sh, srv)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckNetwork: %v\n%s", err, r.Transcript)
				}
				if r.Address != UserNetGuestAddr || r.Body != strings.TrimSpace(srv.Body()) || r.DHCP <= 0 {
					t.Errorf("report %+v, want address %s, body %q and a DHCP time", r, UserNetGuestAddr, srv.Body())
				}
				if srv.Requests() != 1 {
					t.Errorf("the host server served %d requests, want 1", srv.Requests())
				}
				want := append([]string{ListNICs, DHCPCommand, AddressCommand}, FetchCommands(srv.GuestURL())...)
				if strings.Join(sh.lines, "\n") != strings.Join(want, "\n") {
					t.Errorf("typed %q, want %q", sh.lines, want)
				}
				if !strings.Contains(r.Transcript, "$ "+DHCPCommand+"\nConfigured eth0") {
					t.Errorf("transcript lacks dhclient's line:\n%s", r.Transcript)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckNetwork: error %v, want one containing %q\n%s", err, tc.wantErr, r.Transcript)
			}
		})
	}
}

func TestHostServer(t *testing.T) {
	a, b := startHostServer(t), startHostServer(t)
	if a.Body() == b.Body() || !strings.HasSuffix(a.Body(), "\n") {
		t.Errorf("two servers serve %q and %q, want distinct lines", a.Body(), b.Body())
	}
	host, port, err := net.SplitHostPort(a.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("server address %q, want 127.0.0.1:PORT", a.Addr())
	}
	if want := "http://10.0.2.2:" + port + "/net-check"; a.GuestURL() != want {
		t.Errorf("GuestURL %q, want %q", a.GuestURL(), want)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + a.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/net-check"); code != http.StatusOK || body != a.Body() {
		t.Errorf("GET /net-check: %d %q, want 200 %q", code, body, a.Body())
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Errorf("GET /other: %d, want 404", code)
	}
	if a.Requests() != 1 || b.Requests() != 0 {
		t.Errorf("requests %d and %d, want 1 and 0 (a miss is not counted)", a.Requests(), b.Requests())
	}
}

func TestIPv4Address(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{ipAddrEth0, "10.0.2.15/24"},
		{"2: eth0: <BROADCAST,MULTICAST> mtu 1500 state DOWN\n    link/ether 52:54:00:12:34:56\n", ""},
		{"    inet6 fe80::1/64 scope link\n    inet 192.0.2.1/28 scope global eth0\n", "192.0.2.1/28"},
		{"", ""},
	} {
		if got := ipv4Address(tc.out); got != tc.want {
			t.Errorf("ipv4Address(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}

func TestUserNetArgs(t *testing.T) {
	args := strings.Join(UserNetArgs(), " ")
	if args != "-netdev user,id=net0 -device e1000e,netdev=net0" {
		t.Errorf("UserNetArgs: %q", args)
	}
	for _, line := range append([]string{ListNICs, DHCPCommand, AddressCommand}, FetchCommands("http://10.0.2.2:1/x")...) {
		if strings.ContainsAny(line, "\n\r;|&<>") {
			t.Errorf("guest command %q is not one plain shell line", line)
		}
	}
}

// TestNetworkDirect boots the guest straight under QEMU TCG with an e1000e
// on user networking: init has loaded the e1000e module, u-root's dhclient
// gets 10.0.2.15 from QEMU's DHCP server, and wget fetches a page from an
// HTTP server this test runs on the host's loopback, through 10.0.2.2.
func TestNetworkDirect(t *testing.T) {
	im := guestImages(t)
	srv := startHostServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	g, err := Boot(ctx, Options{Kernel: im.Kernel, Initrd: im.Initrd, ExtraArgs: UserNetArgs()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	toPrompt, err := g.WaitPrompt(90 * time.Second)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
	t.Logf("QEMU TCG start to the shell prompt with an %s: %.2f s", NICDevice, toPrompt.Seconds())

	r, err := CheckNetwork(g, srv)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
	t.Logf("dhclient: %s in %.2f s; fetched %q from %s", r.Address, r.DHCP.Seconds(), r.Body, srv.GuestURL())

	if err := g.PowerOff(30 * time.Second); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
}

// guestModules is what /proc/modules lists, by name.
func guestModules(t *testing.T, g *Guest) []string {
	t.Helper()
	out, err := g.Command("cat /proc/modules", 20*time.Second)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}
