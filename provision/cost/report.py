"""The estimate as the operator reads it: the table, then the traffic, the prices used and what is not counted.

Shown by ``rds-edge-api cost`` and at the end of ``deploy --plan``.
"""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape
from rich.table import Table

from ..config import CostConfig
from ..context import Context
from ..errors import describe
from . import estimate as estimating, prices

NOT_COUNTED = ("Not counted: the database itself, data transfer out of the VPC, the free tiers the account may "
               "still have (Lambda's, CloudWatch's, API Gateway's first year), and cents: the certificate (free), "
               "the certificate alerts and mail validation (SNS, EventBridge, SES, S3), the lease table, Route 53 "
               "(the zone is yours; alias queries are free). docs/cost.md.")


def show(ctx: Context, *, offline: str | None = None, instance_class: str | None = None) -> None:
    """Print the estimate for ctx's config: the table, then where its prices and figures come from."""
    book = prices.load(ctx, offline=offline)
    what = estimating.made(ctx.config)
    proxy = _proxy(ctx, book, instance_class) if what.proxy else None
    result = estimating.estimate(ctx.config, book, what, proxy)
    _table(ctx, result)
    for line in _notes(ctx, book, result):
        ctx.out.note(line)


def _proxy(ctx: Context, book: prices.Book, instance_class: str | None) -> estimating.Proxy:
    why = ""
    if instance_class is None:
        try:
            [instance] = ctx.client("rds").describe_db_instances(
                DBInstanceIdentifier=ctx.config.database.instance_id)["DBInstances"]
            instance_class = instance["DBInstanceClass"]
        except (ClientError, BotoCoreError, ValueError) as exc:
            why = describe(exc) if not isinstance(exc, ValueError) else "not one instance"
    if instance_class is None:
        return estimating.Proxy(None, estimating.PROXY_MIN_VCPUS,
                                f"the 2-vCPU minimum (instance class unknown: {why}; give --instance-class)")
    vcpus, source = prices.vcpus(ctx, book, instance_class)
    return estimating.Proxy(instance_class, vcpus, source)


def _usd(amount: float) -> str:
    return f"US${amount:,.2f}"


def _table(ctx: Context, result: estimating.Estimate) -> None:
    table = Table(title=f"Monthly estimate at {result.requests:,} requests", title_justify="left")
    for heading in ("resource", "fixed / month", "per 1M requests", f"at {result.requests:,}"):
        table.add_column(heading, justify="left" if heading == "resource" else "right")
    table.add_column("", style="dim")
    for line in result.lines:
        table.add_row(escape(line.name), _usd(line.fixed), _usd(line.per_million), _usd(line.at_traffic),
                      escape(line.detail))
    table.add_row("[bold]total[/]", f"[bold]{_usd(result.fixed)}[/]", "",
                  f"[bold]{_usd(result.at_traffic)}[/]", f"[bold]{_usd(result.total)} a month[/]")
    ctx.out.console.print(table)


def _notes(ctx: Context, book: prices.Book, result: estimating.Estimate) -> list[str]:
    cost, default = ctx.config.cost, CostConfig()
    said = [f"Traffic: {result.requests:,} requests a month ([cost] requests_per_month"
            f"{', the default' if cost.requests_per_month == default.requests_per_month else ''}), "
            f"{result.response_kb:g} kB an answer ([cost] response_kb"
            f"{', the default' if cost.response_kb == default.response_kb else ''}), "
            f"{result.handler_ms:g} ms a request ({result.handler_source})."]
    if book.unreachable:
        said.append(f"Prices: the project's table of {book.kept_as_of} (us-east-1's list prices; other regions "
                    f"differ): {book.unreachable}.")
    else:
        kept_until = (book.fetched_at + prices.KEPT_FOR).strftime("%Y-%m-%d %H:%M UTC") if book.fetched_at else "?"
        said.append(f"Prices: AWS's price list published {book.published or '(date not given)'}, for "
                    f"{ctx.config.stack.region}, us-east-1 and CloudFront's edges; kept in {book.cache} until "
                    f"{kept_until}.")
        for key, why in sorted(book.from_kept.items()):
            if key in book.used:
                said.append(f"  {key}: the project's table of {book.kept_as_of} ({why}).")
    said.append(NOT_COUNTED)
    return said
