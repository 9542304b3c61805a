#!/usr/bin/env bash
# Send random Stripe-style payment events to the webhook source and print how many of each were accepted.
#   ./send-webhook.sh                 # 100 events to http://127.0.0.1:8080/webhooks/stripe/payments
#   COUNT=500 WEBHOOK_URL=http://127.0.0.1:9000/webhooks/stripe/payments ./send-webhook.sh
# Exit code: 0 when every event was accepted (HTTP 2xx), 1 otherwise.
set -euo pipefail

WEBHOOK_URL="${WEBHOOK_URL:-http://127.0.0.1:8080/webhooks/stripe/payments}"
API_KEY="${WEBHOOK_API_KEY:-demo-api-key-e2e-12345}"
COUNT="${COUNT:-100}"
EVENTS=(payment.succeeded payment.failed payment.refunded payment.canceled)
CURRENCIES=(USD EUR GBP JPY CHF)

declare -A accepted=()
rejected=0
for ((i = 1; i <= COUNT; i++)); do
    event="${EVENTS[RANDOM % ${#EVENTS[@]}]}"
    currency="${CURRENCIES[RANDOM % ${#CURRENCIES[@]}]}"
    amount=$(( (RANDOM * 32768 + RANDOM) % 100000 + 100 ))
    body=$(printf '{"event":"%s","amount":%d,"currency":"%s","timestamp":%d}' \
        "$event" "$amount" "$currency" "$(date +%s)")
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$WEBHOOK_URL" \
        -H "Content-Type: application/json" -H "x-api-key: $API_KEY" -d "$body" || echo 000)
    if [[ "$status" == 2* ]]; then
        accepted[$event]=$(( ${accepted[$event]:-0} + 1 ))
    else
        rejected=$((rejected + 1))
        echo "event $i ($event): HTTP $status" >&2
    fi
    printf '\rsent %d/%d' "$i" "$COUNT"
done
printf '\n\naccepted per event type:\n'
total=0
for event in "${EVENTS[@]}"; do
    n=${accepted[$event]:-0}
    total=$((total + n))
    printf '  %-18s %5d\n' "$event" "$n"
done
printf '  %-18s %5d\n' "all" "$total"
if [ "$rejected" -gt 0 ]; then
    echo "rejected: $rejected (see the messages above)" >&2
    exit 1
fi
