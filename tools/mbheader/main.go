// Command mbheader makes a TamaGo ELF image bootable by GRUB's `multiboot2`
// command (and, on request, `multiboot`) without changing how PVH loaders
// such as QEMU's -kernel start it.
//
//	go run ./tools/mbheader [-multiboot1] [-o OUT] ELF
//
// The TamaGo linker (-T 0x10010000 -R 0x1000) reserves the first 4 KiB of the
// file for the ELF header, program headers, section headers and, at its end,
// the notes (among them Xen's PVH entry note). The zero bytes between the
// section headers and the notes are loaded with the first PT_LOAD segment and
// lie within the first 8 KiB (Multiboot) and 32 KiB (Multiboot2) that loaders
// search. mbheader writes the headers there, after checking that the bytes are
// zero, that no header, table or section claims them and that a PT_LOAD
// segment maps them. Neither header sets the address fields: loaders take the
// layout and the entry point from the ELF program headers, which PVH uses too.
//
// The Multiboot (version 1) header is not written by default: QEMU's -kernel
// looks for it first and, finding it in an ELF64 file, refuses the image
// ("Cannot load x86-64 image, give a 32bit one", QEMU hw/i386/multiboot.c)
// instead of booting it through PVH. Use -multiboot1 with -o for a copy meant
// only for loaders that speak Multiboot but not Multiboot2.
//
// Running mbheader on an image that already has the headers asked for
// reports so, changes nothing and succeeds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	mb1 := flag.Bool("multiboot1", false, "also write a Multiboot (v1) header; QEMU -kernel then refuses the image, see the package doc")
	out := flag.String("o", "", "write the patched image to this file instead of rewriting ELF in place")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mbheader [-multiboot1] [-o OUT] ELF\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	want := Multiboot2
	if *mb1 {
		want |= Multiboot1
	}
	if err := run(flag.Arg(0), *out, want); err != nil {
		fmt.Fprintf(os.Stderr, "mbheader: %v\n", err)
		os.Exit(1)
	}
}

func run(in, out string, want Headers) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if out == "" {
		out = in
	}
	patched, err := Patch(data, want)
	switch {
	case errors.Is(err, ErrPresent):
		fmt.Printf("mbheader: %s: %s header already present, nothing to do\n", in, want)
		if out != in {
			return writeFile(out, data, in)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := writeFile(out, patched, in); err != nil {
		return err
	}
	fmt.Printf("mbheader: %s: Multiboot header at %s, Multiboot2 header at %s\n", out,
		offset(findMultiboot1(patched)), offset(findMultiboot2(patched)))
	return nil
}

func offset(off int) string {
	if off < 0 {
		return "none"
	}
	return fmt.Sprintf("file offset %#x", off)
}

// writeFile replaces path through a temporary file in the same directory, so
// that an interrupted run never leaves half an image; it keeps the mode of
// the file it was made from.
func writeFile(path string, data []byte, from string) error {
	mode := os.FileMode(0o755)
	if st, err := os.Stat(from); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mbheader-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
