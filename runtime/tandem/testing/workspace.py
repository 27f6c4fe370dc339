"""The seeded workspace that the Slack and GitHub stand-ins share: one repository with
pull requests in every state, and a Slack channel whose messages link them.

The messages cover what the `pr_merged` workflow must get right: a merged link, two
links in one message, a closed (unmerged) pull request, an open one, one that does not
exist, a message already reacted to, a link to an issue (not a pull request), and a
message with no link at all. Timestamps are Slack's `ts` strings (seconds.micros).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OWNER = "acme"
REPO = "widgets"
WEB = "https://github.com"


@dataclass(frozen=True)
class SeedPull:
    number: int
    title: str
    state: str  # GitHub's: "open" | "closed"
    merged: bool
    author: str
    branch: str

    @property
    def status(self) -> str:
        """What the workflow cares about: open, merged, or closed (without merging)."""
        if self.merged:
            return "merged"
        return self.state

    @property
    def html_url(self) -> str:
        return f"{WEB}/{OWNER}/{REPO}/pull/{self.number}"


PULLS = (
    SeedPull(101, "Add the widget cache", "closed", True, "ada", "widget-cache"),
    SeedPull(102, "Rewrite the parser in one go", "closed", False, "grace", "parser-rewrite"),
    SeedPull(103, "Faster startup", "open", False, "ada", "fast-start"),
    SeedPull(104, "Fix the flaky clock test", "closed", True, "grace", "clock-test"),
    SeedPull(105, "Bump dependencies", "closed", True, "ada", "bump-deps"),
)
MISSING_PULL = 999  # linked from Slack, unknown to GitHub


@dataclass(frozen=True)
class SeedUser:
    id: str
    name: str
    github_login: str


TEAM_ID = "T0ACME0001"
BOT = SeedUser("U0TANDEMBT", "tandem", "tandem-bot")
USERS = (
    SeedUser("U0ADA00001", "ada", "ada"),
    SeedUser("U0GRACE001", "grace", "grace"),
    BOT,
)


@dataclass(frozen=True)
class SeedChannel:
    id: str
    name: str
    topic: str


CHANNELS = (
    SeedChannel("C0ENG00001", "eng", "Engineering: pull requests and releases"),
    SeedChannel("C0RANDOM01", "random", "Anything else"),
)


@dataclass(frozen=True)
class SeedMessage:
    channel: str  # channel id
    ts: str
    user: str  # user id
    text: str  # Slack mrkdwn: links are <url> or <url|label>
    reactions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> user ids


def _pull(number: int, label: bool = False) -> str:
    url = f"{WEB}/{OWNER}/{REPO}/pull/{number}"
    return f"<{url}|{OWNER}/{REPO}#{number}>" if label else f"<{url}>"


ENG = CHANNELS[0].id
MESSAGES = (  # oldest first
    SeedMessage(ENG, "1764460800.000100", "U0ADA00001", "Lunch at noon?"),
    SeedMessage(ENG, "1764460860.000200", "U0GRACE001", f"Review please: {_pull(103)}"),
    SeedMessage(
        ENG,
        "1764460920.000300",
        "U0ADA00001",
        f"Shipped {_pull(101, label=True)} and {_pull(104)} :tada:",
    ),
    SeedMessage(ENG, "1764460980.000400", "U0GRACE001", f"Abandoning {_pull(102)}, too big"),
    SeedMessage(ENG, "1764461040.000500", "U0ADA00001", f"Typo fix: {_pull(MISSING_PULL)}"),
    SeedMessage(
        ENG,
        "1764461100.000600",
        "U0GRACE001",
        f"Landed {_pull(105)}",
        reactions={"merged": (BOT.id,)},
    ),
    SeedMessage(
        ENG, "1764461160.000700", "U0ADA00001", f"Mixed bag: {_pull(103)} and {_pull(101)}"
    ),
    SeedMessage(
        ENG,
        "1764461220.000800",
        "U0GRACE001",
        f"Not a pull request: <{WEB}/{OWNER}/{REPO}/issues/7>",
        reactions={"eyes": ("U0ADA00001",)},
    ),
    SeedMessage(CHANNELS[1].id, "1764461280.000900", "U0ADA00001", f"FYI {_pull(101)}"),
)
