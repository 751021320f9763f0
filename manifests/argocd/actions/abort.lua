-- Argo CD resource action "abort" for paydeck.dev/PaymentService:
-- Scale the canary to 0 and serve the stable revision alone.
-- Like the kubectl plugin, it writes a command into status (Argo CD patches the status
-- subresource when only status changed) and never touches spec, so Git stays the source of
-- truth and the next sync sees no drift. The operator acts on a requestedAt newer than
-- status.lastHandledCommandAt.
if obj.status == nil then
  obj.status = {}
end
obj.status.command = {
  action = "abort",
  requestedAt = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  requestedBy = "argocd",
}
return obj
