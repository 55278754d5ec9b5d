// The Probot anchor of benchmarks/webhook_load.py: an app with one `issues.labeled` handler,
// started with probot's own `run(app)` (its HTTP server, webhook verification and logging).
// Copied into the scratch folder where probot is installed, and run there with node.
// Environment: APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, HOST, PORT, TRIGGER_LABEL (probot's own
// settings, and the label the handler acts on).
import { run } from "probot";

const trigger = (process.env.TRIGGER_LABEL || "qwen-fix").toLowerCase();
let handled = 0;

function app(probot) {
  probot.on("issues.labeled", async (context) => {
    // What a handler decides from before it acts: the label, who labelled, which issue.
    if (context.payload.label.name.toLowerCase() !== trigger) return;
    if (context.payload.sender.type === "Bot") return;
    const issue = context.issue();
    if (issue.issue_number > 0) handled += 1;
  });
}

process.on("SIGTERM", () => {
  console.error(`handled ${handled}`);
  process.exit(0);
});

await run(app);
