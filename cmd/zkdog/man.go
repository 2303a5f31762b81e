package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/duration"
)

// manCommand prints the manual page, made from the same definitions as
// --help so that the two cannot disagree; make man and make install
// write it to a file.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "Print the manual page (troff): zkdog man > zkdog.1",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("zkdog man takes no arguments, got %q", c.Args().First())
			}
			page, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("making the manual page: %w", err)
			}
			if _, err := fmt.Fprint(c.App.Writer, page); err != nil {
				return outputf("writing the manual page: %w", err)
			}
			return nil
		},
	}
}

// libFlagStringer is the library's own, taken before newApp replaces it.
var libFlagStringer = cli.FlagStringer

// flagStringer is the help's line for a flag: the library's, with a
// placeholder that says what the value is where the flag's usage names
// none in backquotes (the library would say "value").
func flagStringer(f cli.Flag) string {
	// A switch's default is always off; saying so on every line is noise.
	line := strings.Replace(libFlagStringer(f), " (default: false)", "", 1)
	df, ok := f.(cli.DocGenerationFlag)
	if !ok || !df.TakesValue() || strings.Contains(df.GetUsage(), "`") {
		return line
	}
	names, rest, _ := strings.Cut(line, "\t")
	return strings.ReplaceAll(names, " value", " "+placeholderFor(f)) + "\t" + rest
}

func placeholderFor(f cli.Flag) string {
	switch f := f.(type) {
	case *cli.GenericFlag:
		if _, ok := f.Value.(*duration.Value); ok {
			return "DURATION"
		}
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag:
		return "N"
	case *cli.StringFlag:
		if f.TakesFile {
			return "FILE"
		}
	case *cli.StringSliceFlag:
		if f.TakesFile {
			return "FILE"
		}
	}
	return "VALUE"
}
