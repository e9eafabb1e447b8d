"""Managing runs after the fact: re-run, edit, archive, restore, purge."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
