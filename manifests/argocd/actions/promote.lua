-- Argo CD resource action "promote" for paydeck.dev/PaymentService:
-- Skip the current pause or analysis step.
-- Like the kubectl plugin, it writes a command into status (Argo CD patches the status
-- subresource when only status changed) and never touches spec, so Git stays the source of
-- truth and the next sync sees no drift. The operator acts on a requestedAt newer than
-- status.lastHandledCommandAt.
if obj.status == nil then
  obj.status = {}
end
obj.status.command = {
  action = "promote",
  requestedAt = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  requestedBy = "argocd",
}
return obj
