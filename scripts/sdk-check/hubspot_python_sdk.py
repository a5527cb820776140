#!/usr/bin/env python3
"""Runs HubSpot's official Python SDK (hubspot-api-client) against `crmkit sandbox hubspot`.

Not run in CI (it needs the SDK from PyPI). Usage:

    crmkit sandbox hubspot --port 8026 --companies 20 &
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install hubspot-api-client
    HUBSPOT_BASE_URL=http://127.0.0.1:8026 /tmp/venv/bin/python scripts/sdk-check/hubspot_python_sdk.py

Each check prints one line; the script exits non-zero at the first failure.
"""

import os
import sys
import uuid

from hubspot.crm import companies, contacts

BASE = os.environ.get("HUBSPOT_BASE_URL", "http://127.0.0.1:8026").rstrip("/")
TOKEN = os.environ.get("HUBSPOT_ACCESS_TOKEN", "sdk-check")


def client(module):
    """An API client of one SDK module pointed at the sandbox (`Configuration(host=…)`, the
    token set as the SDK's own factory sets it)."""
    cfg = module.Configuration(host=BASE)
    cfg.access_token = TOKEN
    return module.ApiClient(cfg)


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}".rstrip())
    if not ok:
        sys.exit(1)


def main():
    run = uuid.uuid4().hex[:8]
    c = client(contacts)
    basic = contacts.BasicApi(c)
    batch = contacts.BatchApi(c)
    search = contacts.SearchApi(c)

    made = basic.create(
        contacts.SimplePublicObjectInputForCreate(
            properties={"email": f"py-{run}@sdk.example", "firstname": "Py"}
        )
    )
    check("contacts.basic_api.create", bool(made.id), made.id)
    got = basic.get_by_id(made.id, properties=["email", "firstname"])
    check("contacts.basic_api.get_by_id", got.properties["email"] == f"py-{run}@sdk.example")
    patched = basic.update(made.id, contacts.SimplePublicObjectInput(properties={"lastname": "Sdk"}))
    check("contacts.basic_api.update", patched.properties.get("lastname") == "Sdk")
    page = basic.get_page(limit=2)
    check("contacts.basic_api.get_page", len(page.results) <= 2 and page.results, f"{len(page.results)} results")
    if page.paging and page.paging.next:
        more = basic.get_page(limit=2, after=page.paging.next.after)
        check("contacts.basic_api.get_page(after)", bool(more.results))

    try:
        basic.create(
            contacts.SimplePublicObjectInputForCreate(properties={"email": f"py-{run}@sdk.example"})
        )
        check("a duplicate email is refused", False)
    except contacts.ApiException as e:
        check("a duplicate email is refused", e.status == 409 and "Existing ID" in e.body, str(e.status))

    created = batch.create(
        contacts.BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                contacts.SimplePublicObjectBatchInputForCreate(properties={"email": f"py-{run}-{i}@sdk.example"})
                for i in range(3)
            ]
        )
    )
    check("contacts.batch_api.create", len(created.results) == 3)
    upserted = batch.upsert(
        contacts.BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                contacts.SimplePublicObjectBatchInputUpsert(
                    id=f"py-{run}-0@sdk.example", id_property="email", properties={"firstname": "Up"}
                )
            ]
        )
    )
    check("contacts.batch_api.upsert", len(upserted.results) == 1)
    read = batch.read(
        contacts.BatchReadInputSimplePublicObjectId(
            inputs=[contacts.SimplePublicObjectId(id=r.id) for r in created.results],
            properties=["email"],
            properties_with_history=[],
        )
    )
    check("contacts.batch_api.read", len(read.results) == 3)

    found = search.do_search(
        contacts.PublicObjectSearchRequest(
            filter_groups=[
                contacts.FilterGroup(
                    filters=[contacts.Filter(property_name="email", operator="EQ", value=f"py-{run}@sdk.example")]
                )
            ],
            properties=["email"],
            limit=10,
        )
    )
    check("contacts.search_api.do_search", found.total == 1 and found.results[0].id == made.id)

    basic.archive(made.id)
    try:
        basic.get_by_id(made.id)
        check("contacts.basic_api.archive", False)
    except contacts.ApiException as e:
        check("contacts.basic_api.archive", e.status == 404)

    co = companies.BasicApi(client(companies))
    company = co.create(companies.SimplePublicObjectInputForCreate(properties={"name": f"Py {run}"}))
    check("companies.basic_api.create", bool(company.id), company.id)
    print("python sdk: every check passed")


if __name__ == "__main__":
    main()
