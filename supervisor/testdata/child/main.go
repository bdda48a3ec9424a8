// Command child is the app the supervisor tests run: flags choose how it
// misbehaves (crash, ignore SIGTERM, fork grandchildren, print fast, grow
// memory, listen late, print a ready line).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	crashAfter := flag.Duration("crash-after", -1, "exit with -code after this long (negative: never)")
	code := flag.Int("code", 1, "exit code of a crash")
	crashIfExists := flag.String("crash-if-exists", "", "crash at once while this file exists")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	grandchildren := flag.Int("grandchildren", 0, "start this many grandchildren (copies of itself)")
	pidfile := flag.String("pidfile", "", "append the grandchildren's pids here, one a line")
	lines := flag.Int("print-lines", 0, "print this many lines, alternately to stdout and stderr")
	lineSize := flag.Int("line-size", 100, "bytes per printed line, newline included")
	growMB := flag.Int("grow-mb", 0, "grow resident memory by this many MiB, 1 MiB at a time")
	growEvery := flag.Duration("grow-every", 5*time.Millisecond, "pause between MiB")
	listen := flag.String("listen", "", "listen on this TCP address")
	listenAfter := flag.Duration("listen-after", 0, "wait this long before listening")
	readyLine := flag.String("ready-line", "", "print this line")
	readyAfter := flag.Duration("ready-after", 0, "wait this long before printing -ready-line")
	requireTCP := flag.String("require-tcp", "", "exit 7 at once unless this address accepts")
	spin := flag.Bool("spin", false, "keep one CPU busy")
	printEnv := flag.String("print-env", "", "print this variable and the working directory")
	flag.Parse()

	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *requireTCP != "" {
		c, err := net.DialTimeout("tcp", *requireTCP, time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "required address not accepting:", err)
			os.Exit(7)
		}
		c.Close()
	}
	if *crashIfExists != "" {
		if _, err := os.Stat(*crashIfExists); err == nil {
			fmt.Fprintln(os.Stderr, "crash file exists")
			os.Exit(*code)
		}
	}
	if *printEnv != "" {
		wd, _ := os.Getwd()
		fmt.Printf("%s=%s cwd=%s\n", *printEnv, os.Getenv(*printEnv), wd)
	}
	for i := 0; i < *grandchildren; i++ {
		args := []string{}
		if *ignoreTerm {
			args = append(args, "-ignore-term")
		}
		cmd := exec.Command(os.Args[0], args...)
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "grandchild:", err)
			os.Exit(3)
		}
		if *pidfile != "" {
			f, err := os.OpenFile(*pidfile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				os.Exit(3)
			}
			fmt.Fprintln(f, cmd.Process.Pid)
			f.Close()
		}
	}
	if *lines > 0 {
		body := strings.Repeat("x", max(*lineSize-12, 1))
		for i := 0; i < *lines; i++ {
			out := os.Stdout
			if i%2 == 1 {
				out = os.Stderr
			}
			fmt.Fprintf(out, "%010d %s\n", i, body)
		}
	}
	if *readyLine != "" {
		go func() {
			time.Sleep(*readyAfter)
			fmt.Println(*readyLine)
		}()
	}
	if *listen != "" {
		go func() {
			time.Sleep(*listenAfter)
			ln, err := net.Listen("tcp", *listen)
			if err != nil {
				fmt.Fprintln(os.Stderr, "listen:", err)
				os.Exit(4)
			}
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	if *growMB > 0 {
		go func() {
			var keep [][]byte
			for i := 0; i < *growMB; i++ {
				b := make([]byte, 1<<20)
				for j := range b {
					b[j] = byte(j)
				}
				keep = append(keep, b)
				time.Sleep(*growEvery)
			}
			for {
				time.Sleep(time.Hour)
				_ = keep
			}
		}()
	}
	if *spin {
		go func() {
			for n := 0; ; n++ {
				_ = n * n
			}
		}()
	}
	if *crashAfter >= 0 {
		time.Sleep(*crashAfter)
		os.Exit(*code)
	}
	for {
		time.Sleep(time.Hour)
	}
}
