package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/worker"
)

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "consume",
		Usage: "Take one item from the queue, record it done, and print it.",
		Description: "For scripts that handle an item themselves: zkdog hands the item to nobody else and the\n" +
			"master counts it done. To have zkdog watch the work, use zkdog run instead. Exit codes: 0 an\n" +
			"item was printed; 1 the queue is empty; 2 bad flags or no job at --root; 6 ZooKeeper unreachable.",
		Flags: append(commonFlags(),
			&cli.BoolFlag{Name: flagJSON, Usage: "Print the item as JSON, with its index and attempt."},
			&cli.StringFlag{Name: flagID, EnvVars: envs(envWorkerID), Usage: "`NAME` recorded as the item's taker; default host:pid."},
		),
		Action: consumeAction,
	}
}

func consumeAction(c *cli.Context) error {
	_, sess, j, err := openJob(c, c.Context, useWork)
	if err != nil {
		return err
	}
	defer sess.Close()
	id := c.String(flagID)
	if id == "" {
		id = hostPid()
	}
	claim, err := worker.Consume(c.Context, j, id)
	if errors.Is(err, job.ErrEmpty) {
		return marked{fmt.Errorf("%s: the queue is empty", j.L.Root), job.ErrEmpty}
	}
	if err != nil {
		return err
	}
	if c.Bool(flagJSON) {
		return printJSON(c, struct {
			Index   int    `json:"index"`
			Attempt int    `json:"attempt"`
			Item    string `json:"item"`
		}{claim.Index, claim.Attempt, string(claim.Data)})
	}
	if _, err := fmt.Printf("%s\n", claim.Data); err != nil {
		return outputf("item %d was recorded done but could not be printed: %w", claim.Index, err)
	}
	return nil
}
