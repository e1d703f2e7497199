"""The OpenAI Responses API (`/v1/responses`), served as a front door onto the chat pipeline."""

from __future__ import annotations

from .routes import create_response, delete_response, get_response, list_input_items

__all__ = ["create_response", "delete_response", "get_response", "list_input_items"]
