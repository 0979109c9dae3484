"""The faults: each scenario starts its platform, plays its load, injects its fault and fills the ledger."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.faults._check import unparked
from bench.faults._log import read_topic
from bench.faults._poison import inject_poison
from bench.faults._stack import Platform
from connectors.whatsapp_simulator import SimulatorConfig, WhatsAppSimulator
from switchboard._demo_stack import DemoSecrets
from switchboard.groups import wait_for_stable_group
from switchboard.localkafka import LocalCluster, cache_root


@dataclass(frozen=True)
class Sizes:
    """How many messages a scenario sends and how long it may take to settle them."""

    messages: int

    @property
    def timeout(self) -> float:
        return max(600.0, self.messages / 2)  # a cap only: the waits fail sooner when nothing settles for 240 s


Scenario = Callable[[Platform, Sizes], Awaitable[None]]


async def worker_sigkill(platform: Platform, sizes: Sizes) -> None:
    """SIGKILL the only worker a quarter of the way through; a second one with empty state takes over."""
    platform.declare()
    await platform.start()
    first = platform.start_worker("worker-1")
    await platform.request(0, sizes.messages)
    await platform.until_settled(sizes.messages // 4, sizes.timeout)
    first.kill()
    platform.ledger.faults["fault"] = f"SIGKILL worker-1 at {platform.settled():,} settled; worker-2 (empty state)"
    platform.start_worker("worker-2")
    took = await platform.until_settled(sizes.messages, sizes.timeout)
    platform.ledger.figures["seconds from the kill to the last terminal state"] = round(took, 1)


JOIN_WAVES, JOIN_WAVE_SECONDS = 48, 0.25  # the waves span the join's rebalance (revoke, assign, table recovery)


async def worker_join(platform: Platform, sizes: Sizes) -> None:
    """A second worker joins while the requests are written, before the first has committed much: each request is
    applied once, by whichever worker owns its partition then (docs/FAULTS.md, "The loss at a worker's join")."""
    platform.declare()
    await platform.start()
    platform.start_worker("worker-1")
    group = platform.settings("worker-1").app_id
    await wait_for_stable_group(platform.bootstrap, group, members=1, timeout=sizes.timeout)
    platform.start_worker("worker-2")
    per_wave = -(-sizes.messages // JOIN_WAVES)
    for first in range(0, sizes.messages, per_wave):
        await platform.request(first, min(per_wave, sizes.messages - first))
        await asyncio.sleep(JOIN_WAVE_SECONDS)  # the pace of the traffic, not a wait for something to happen
    platform.ledger.faults["fault"] = (f"worker-2 started once worker-1 was alone in the group; {sizes.messages:,} "
                                       f"requests written meanwhile, {per_wave:,} every {JOIN_WAVE_SECONDS:g} s")
    await platform.until_settled(sizes.messages, sizes.timeout)
    state = await wait_for_stable_group(platform.bootstrap, group, members=2, timeout=sizes.timeout)
    platform.ledger.figures["workers in the group at the end"] = state.members


async def slow_sender(platform: Platform, sizes: Sizes) -> None:
    """A sender far slower than the requests, so most jobs wait on its lanes' pages (`_spill.py`): SIGKILL the worker
    mid-backlog; a second one with empty state restores rows and pages from the changelogs and sends the rest."""
    rate = max(20.0, sizes.messages / 50)  # about 50 s of sending: the writer hands jobs over many times faster
    platform.declare(per_second=rate)
    await platform.start()
    first = platform.start_worker("worker-1")
    # A contact has one message at the dispatcher at a time: one message each, so the whole backlog reaches it.
    await platform.request(0, sizes.messages, per_contact=1)
    await platform.until_settled(sizes.messages // 4, sizes.timeout)
    first.kill()
    changelog = await read_topic(platform.bootstrap, platform.settings("worker-1").changelog("senders"))
    pages = sum(1 for record in changelog if record.key and b"~spill:" in record.key)
    platform.ledger.figures["page writes in the senders changelog before the kill"] = pages
    platform.ledger.faults["fault"] = (f"sender at {rate:g} msg/s; SIGKILL worker-1 at {platform.settled():,} "
                                       "settled, the rest queued (in pages too); worker-2 (empty state)")
    platform.start_worker("worker-2")
    took = await platform.until_settled(sizes.messages, sizes.timeout)
    platform.ledger.figures["seconds from the kill to the last terminal state"] = round(took, 1)


async def state_loss(platform: Platform, sizes: Sizes) -> None:
    """The worker is stopped a third of the way through, its state directory deleted, and started again."""
    platform.declare()
    await platform.start()
    worker = platform.start_worker("worker-1")
    await platform.request(0, sizes.messages)
    await platform.until_settled(sizes.messages // 3, sizes.timeout)
    await asyncio.to_thread(worker.stop)
    shutil.rmtree(worker.config.data_dir)
    platform.ledger.faults["fault"] = (f"worker-1 stopped at {platform.settled():,} settled, its state directory "
                                       "deleted, started again (restores from the changelogs)")
    platform.start_worker("worker-1")
    await platform.until_settled(sizes.messages, sizes.timeout)


def broker_restart(cluster: LocalCluster) -> Scenario:
    """One broker of three (RF 3, min.insync 2) stopped a quarter of the way through, started at half way."""

    async def scenario(platform: Platform, sizes: Sizes) -> None:
        platform.declare()
        await platform.start()
        platform.start_worker("worker-1")
        await platform.request(0, sizes.messages)
        await platform.until_settled(sizes.messages // 4, sizes.timeout)
        stopped_at = platform.settled()
        await asyncio.to_thread(cluster.stop_node, 3)
        await platform.until_settled(sizes.messages // 2, sizes.timeout)
        restarted_at = platform.settled()
        await asyncio.to_thread(cluster.start_node, 3, cache_root())
        platform.ledger.faults["fault"] = (f"broker 3 of 3 stopped at {stopped_at:,} settled, started again at "
                                           f"{restarted_at:,}")
        await platform.until_settled(sizes.messages, sizes.timeout)

    return scenario


def simulator_config(secrets: DemoSecrets) -> SimulatorConfig:
    """5% 5xx, 1% answers held past the driver's timeout (3 s: the simulator shares the runner's event loop with
    the checker's readers, so a tighter one would time out answers that were merely late), 130429 bursts (40/s
    against a 100/s sender), 20% of messages with a receipt posted twice and 20% with two receipts swapped."""
    return SimulatorConfig(access_token=secrets.access_token, app_secret=secrets.app_secret,
                           phone_numbers={"105954558954427": "15550001111"}, seed=8, latency=(0.0, 0.02),
                           mps_limit=40, pair_window=None, enforce_window=False, error_rate=0.05,
                           timeout_rate=0.01, timeout_hold=8.0, receipt_interval=0.05, duplicate_rate=0.2,
                           reorder_rate=0.2)


async def simulator_faults(platform: Platform, sizes: Sizes) -> None:
    """WhatsApp through the simulator with its faults; receipts back through the receiver and the normaliser."""
    secrets = DemoSecrets.from_environment({})
    async with WhatsAppSimulator(simulator_config(secrets)) as simulator:
        # The sender paced under the simulator's 40 sends in any second (30/s, bursts of 5). Declared at 100/s
        # (bursts of 100), the whole backlog hit WhatsApp at once, the 130429 answers opened the circuit breaker
        # (over half of its last 20 results) and it shed the queue to SMS: at 2,000 messages the faults below
        # touched 40 of them. 130429 now comes only when retries and fresh sends meet in one second.
        platform.declare(driver="whatsapp", settings={"base_url": simulator.url, "timeout": "3"}, per_second=30,
                         burst=5)
        await platform.start()
        await platform.start_webhooks(simulator, secrets)
        platform.ledger.receipts_expected = True
        platform.start_worker("worker-1")
        await platform.request(0, sizes.messages)
        await platform.until_settled(sizes.messages, sizes.timeout)
        await until_receipts(platform, simulator, sizes.timeout)
        counters = simulator.counters
        platform.ledger.faults["fault"] = ("simulator: 5% 5xx, 1% answers held 8 s (driver timeout 3 s), 130429 over "
                                           "40/s, 20% receipts doubled, 20% swapped")
        platform.ledger.figures["simulator"] = (f"{counters.requests:,} send requests, {counters.sent:,} accepted, "
                                                f"refused {dict(sorted(counters.rejected.items()))}, "
                                                f"{counters.timeouts} held, {counters.webhooks_posted:,} webhooks")
        platform.ledger.figures["accepted on"] = str(dict(sorted(_channels(platform).items())))


async def until_receipts(platform: Platform, simulator: WhatsAppSimulator, timeout: float) -> None:
    """Until the simulator has posted every receipt and each message accepted on WhatsApp has its read applied.
    The simulator drops a webhook after three failed posts (Meta retries for days): if it dropped any, the
    messages they were about cannot be read, so the wait is for the posted ones only (counted in the tally)."""
    await platform.until(lambda: simulator.pending_webhooks == 0, "every receipt posted", timeout)
    dropped = simulator.counters.webhooks_dropped
    platform.ledger.figures["webhooks the simulator dropped after 3 posts"] = dropped
    if dropped == 0:
        await platform.until(platform.whatsapp_read, "every WhatsApp message read", timeout)


def _channels(platform: Platform) -> dict[str, int]:
    counts: dict[str, int] = {}
    for channel in platform.accepted_on.values():
        counts[channel] = counts.get(channel, 0) + 1
    return counts


async def poison(platform: Platform, sizes: Sizes) -> None:
    """Good traffic with bad records on every input topic, bad webhooks and schema-invalid events among it."""
    secrets = DemoSecrets.from_environment({})
    async with WhatsAppSimulator(access_token=secrets.access_token, app_secret=secrets.app_secret,
                                 phone_numbers={"105954558954427": "15550001111"}, pair_window=None,
                                 enforce_window=False, mps_limit=None, receipt_interval=0.05) as simulator:
        platform.declare(driver="whatsapp", settings={"base_url": simulator.url}, per_second=1000)
        await platform.start()
        await platform.start_webhooks(simulator, secrets)
        platform.ledger.receipts_expected = True
        platform.start_worker("worker-1")
        await platform.request(0, sizes.messages // 2)
        await inject_poison(platform, secrets)
        await platform.request(sizes.messages // 2, sizes.messages - sizes.messages // 2)
        await platform.until_settled(sizes.messages, sizes.timeout)
        await until_receipts(platform, simulator, sizes.timeout)
        await until_parked(platform, 60.0)
        platform.ledger.faults["fault"] = ("bad records on sb.commands, sb.dispatch, sb.events.business, "
                                           "sb.commands.template, sb.webhooks.raw; bad webhooks; bad events")


async def until_parked(platform: Platform, timeout: float) -> None:
    """Until every bad record has its dead letter (the checker then says which, if any, never got one)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while unparked(platform.ledger.poison, await read_topic(platform.bootstrap, platform.prefix + "sb.deadletters")):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(1.0)  # a dead letter has no notification; the topic is read again


SCENARIOS: dict[str, Scenario] = {
    "worker-sigkill": worker_sigkill,
    "worker-join": worker_join,
    "slow-sender": slow_sender,
    "state-loss": state_loss,
    "simulator-faults": simulator_faults,
    "poison": poison,
}
